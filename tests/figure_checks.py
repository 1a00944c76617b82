"""What every figure of the book must satisfy where it is shown (the text column), checked on a drawn Figure."""

from matplotlib.text import Text

from craving_circuits.book.plotting import COLUMN_WIDTH_IN, MIN_FONT_PT


def shown_texts(fig) -> list[Text]:
    """The visible, non-empty texts of a figure."""
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and t.figure is fig]


def assert_book_figure(fig) -> None:
    """The figure fits the text column, legends included, and no text is below the smallest font.

    Raises AssertionError naming the offending text.
    """
    renderer = fig.canvas.get_renderer()
    width = fig.get_tightbbox(renderer).width  # inches, as saved with bbox_inches="tight"
    assert width <= COLUMN_WIDTH_IN + 0.05, f"figure is {width:.2f} in wide, the column {COLUMN_WIDTH_IN} in"
    small = [(t.get_text(), t.get_fontsize()) for t in shown_texts(fig) if t.get_fontsize() < MIN_FONT_PT - 1e-9]
    assert not small, f"texts below {MIN_FONT_PT} pt: {small[:5]}"


def colorbar_titles(fig) -> list[str]:
    """Titles of the tall, narrow axes of a figure (nilearn's colour bars)."""
    titles = [
        next((t for t in (ax.get_title(loc=loc) for loc in ("center", "left", "right")) if t), "") for ax in fig.axes
    ]
    return [title for ax, title in zip(fig.axes, titles) if title and ax.bbox.width < ax.bbox.height / 3]
