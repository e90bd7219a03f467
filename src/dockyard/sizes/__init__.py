"""size-report: where an image's bytes are (`report` gathers, `model` judges, `render` prints and
writes), and each build's breakdown kept in `history`."""
