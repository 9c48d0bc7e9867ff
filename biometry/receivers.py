"""Receivers of the classifier's signals (the classifier sits below biometry and may not import it)."""
