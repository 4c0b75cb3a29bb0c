"""Shared code for the PASCAL VOC2012 + MMSegmentation course."""
