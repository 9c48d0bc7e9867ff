"""Machine-learning core: plain Python and Keras, no Django import.

Training, evaluation and the Celery worker all go through this package, so the
same preprocessing serves every path.
"""
