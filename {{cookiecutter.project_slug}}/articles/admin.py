from django.contrib import admin

from articles.models import Article, Tag


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ("title", "author", "published", "created_at")
    list_filter = ("published", "tags")
    list_select_related = ("author",)
    search_fields = ("title", "content")
    autocomplete_fields = ("tags",)
    raw_id_fields = ("author",)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ("name",)
