"""starter/api"""
