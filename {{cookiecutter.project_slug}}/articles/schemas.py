from datetime import datetime
from typing import Annotated

from ninja import Field, Schema
from pydantic import ConfigDict, StringConstraints, field_validator

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Content = Annotated[str, StringConstraints(max_length=50_000)]
TagName = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=50)
]
Tags = Annotated[list[TagName], Field(max_length=10)]


class ArticleIn(Schema):
    # strict: "yes" is not a boolean and 5 is not a title; forbid: a misspelt
    # field is an error, not silently ignored.
    model_config = ConfigDict(strict=True, extra="forbid")

    title: Title
    content: Content = ""
    tags: Tags = Field(default_factory=list)
    published: bool = False


class ArticlePatch(Schema):
    """Only the fields sent change; none of them may be null."""

    model_config = ConfigDict(strict=True, extra="forbid")

    title: Title | None = None
    content: Content | None = None
    tags: Tags | None = None
    published: bool | None = None

    @field_validator("title", "content", "tags", "published", mode="before")
    @classmethod
    def not_null(cls, value):
        if value is None:
            raise ValueError("may not be null")
        return value


class ArticleOut(Schema):
    id: int
    title: str
    content: str
    published: bool
    author: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_author(article) -> str:
        return article.author.get_username()

    @staticmethod
    def resolve_tags(article) -> list[str]:
        return [tag.name for tag in article.tags.all()]


class Stats(Schema):
    total: int
    published: int
    by_tag: dict[str, int]


class Message(Schema):
    detail: str
