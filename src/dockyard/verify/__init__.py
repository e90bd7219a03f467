"""Checking images: facts gathered once (`gather`, with the in-container `probe` run by `runner`),
judged by pure checks (`checks`), rendered by `report`; `compose` does the same for a stack."""
