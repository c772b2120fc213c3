"""The Django internals this project relies on are the source it was checked against."""

from dataclasses import replace

from django.core.checks import Warning

from core import internals
from core.checks import check_django_internals


def test_the_installed_django_is_the_source_this_project_was_checked_against():
    """Fails after a Django upgrade that changed what core/ copies or relies on: re-read it."""
    changed = internals.changed()
    assert changed == [], "\n".join(
        f"{path} changed (digest {now}): re-read {dependency.reread}"
        for path, now, dependency in changed
    )
    assert check_django_internals() == []


def test_a_changed_source_warns_with_what_to_reread(monkeypatch):
    path = "django.middleware.csrf.CsrfViewMiddleware"
    checked = internals.READ_AGAINST[path]
    monkeypatch.setitem(internals.READ_AGAINST, path, replace(checked, digests=("0" * 16,)))
    now = internals.digest(path)
    assert check_django_internals() == [
        Warning(
            f"{path} is not the source this project was checked against (digest {now}).",
            hint=f"Re-read {checked.reread}; if it still holds, add {now!r} to the "
            f"digests of {path} in core/internals.py.",
            id="core.W001",
        )
    ]


def test_an_object_django_no_longer_defines_is_reported_gone(monkeypatch):
    dependency = internals.Dependency("nothing", ("0" * 16,))
    monkeypatch.setattr(internals, "READ_AGAINST", {"django.middleware.csrf.Gone": dependency})
    assert internals.changed() == [("django.middleware.csrf.Gone", "gone", dependency)]


def test_the_source_read_is_django_s_even_where_the_project_replaced_it():
    # core/checks.py puts a partial in place of this helper at start-up.
    source = internals.source("django.core.checks.security.base._security_middleware")
    assert source.startswith("def _security_middleware():")
    method = internals.source("django.dispatch.dispatcher.Signal._live_receivers")
    assert method.startswith("def _live_receivers(self, sender):")
