from datetime import datetime
from typing import Annotated

from ninja import Field, Schema
from pydantic import AfterValidator, ConfigDict, StringConstraints, field_validator

# The whitespace stripped from titles and tags. It is spelt out rather than
# `\s` because Python, pydantic's Rust regex engine and the JavaScript of an
# OpenAPI client disagree on what `\s` matches.
SPACE = "\t\n\x0b\x0c\r "
# Limits and patterns apply to the text as sent, so /api/openapi.json states
# exactly what is accepted: no NUL (PostgreSQL cannot store it), and for a
# title or a tag at least one character that is not SPACE.
NO_NUL = r"^[^\x00]*$"
VISIBLE = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r ][^\x00]*$"
TAG_MAX_LENGTH = 50


def strip(text: str) -> str:
    return text.strip(SPACE)


def tag_name(text: str) -> str:
    """A tag as stored: stripped and lowercased, never longer than the text sent.

    "İ" (U+0130) is the one character whose str.lower() is two ("i" and a
    combining dot): it becomes "i", as in Turkish, so a tag that meets the
    schema's maxLength is never refused for growing past it.
    """
    return strip(text).replace("\u0130", "i").lower()


Title = Annotated[str, StringConstraints(max_length=200, pattern=VISIBLE), AfterValidator(strip)]
Content = Annotated[str, StringConstraints(max_length=50_000, pattern=NO_NUL)]
TagName = Annotated[
    str,
    StringConstraints(max_length=TAG_MAX_LENGTH, pattern=VISIBLE),
    AfterValidator(tag_name),
]
Tags = Annotated[list[TagName], Field(max_length=10)]


def _no_default(schema: dict) -> None:
    schema.pop("default", None)


def optional():
    """A field that may be left out but not sent as null: its schema has no `null` default."""
    return Field(None, json_schema_extra=_no_default)


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

    title: Title = optional()
    content: Content = optional()
    tags: Tags = optional()
    published: bool = optional()

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
