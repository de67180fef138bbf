"""The no-op component (``pass``): what remains is the cost of starting and stopping."""
