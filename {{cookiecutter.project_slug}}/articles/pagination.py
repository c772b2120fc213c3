"""The project's pagination: every paginated list is bounded before it reaches the database.

django-ninja's PageNumberPagination accepts any page number: page
9223372036854775807 makes an OFFSET that SQLite refuses ("datatype
mismatch") and PostgreSQL cannot hold ("bigint out of range"), a 500, and a
deep page costs a scan of every row it skips. Here `page` and `page_size` have
maxima in the schema (and in /api/openapi.json), so no request skips more than
NINJA_PAGINATION_MAX_OFFSET rows; beyond them the answer is a 422 naming the
parameter. NINJA_PAGINATION_CLASS names this class, so `@paginate` and
RouterPaginated use it by default.
"""

from ninja import Field, Schema
from ninja import pagination as ninja_pagination
from ninja.conf import settings

MAX_PAGE_SIZE = settings.PAGINATION_MAX_PER_PAGE_SIZE
# The last page whose offset, (page - 1) * page_size, stays within the bound
# at the largest page size.
MAX_PAGE = settings.PAGINATION_MAX_OFFSET // MAX_PAGE_SIZE + 1


class PageNumberPagination(ninja_pagination.PageNumberPagination):
    """`?page=N&page_size=M`, 1 <= N <= MAX_PAGE and 1 <= M <= MAX_PAGE_SIZE.

    A page past the last item is empty; `count` says how many there are.
    """

    class Input(Schema):
        page: int = Field(1, ge=1, le=MAX_PAGE)
        page_size: int | None = Field(None, ge=1, le=MAX_PAGE_SIZE)

    def __init__(self, page_size: int = settings.PAGINATION_PER_PAGE, **kwargs):
        if kwargs.get("max_page_size", MAX_PAGE_SIZE) > MAX_PAGE_SIZE:
            raise ValueError(f"max_page_size is at most NINJA_MAX_PER_PAGE_SIZE ({MAX_PAGE_SIZE}).")
        super().__init__(page_size=page_size, **kwargs)
