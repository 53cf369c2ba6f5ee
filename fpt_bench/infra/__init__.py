"""Small shared machinery: atomic files, progress reports, classifying failures."""
