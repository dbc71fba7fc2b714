"""docs/presentation.pdf, built by docs/slides/build.py: style, drawing helpers, figures, pages."""
