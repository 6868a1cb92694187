"""Explanations: saliency over time, its faithfulness, beat-synchronous views, and the part-based family's own."""
