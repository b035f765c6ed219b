"""starter/services"""
