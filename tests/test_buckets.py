from datetime import UTC, datetime

from lifelog.aw.buckets import newest_end_hint, selected


def test_selection_is_by_glob_and_sorted():
    ids = ["aw-watcher-window_h", "aw-watcher-afk_h", "aw-watcher-web-firefox_h", "other"]
    assert selected(ids, ["*"]) == sorted(ids)
    assert selected(ids, ["aw-watcher-window_*", "aw-watcher-afk_*"]) == ["aw-watcher-afk_h", "aw-watcher-window_h"]
    assert selected(ids, ["nothing*"]) == []


def test_the_hint_is_last_updated_or_rust_metadata_end():
    t = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert newest_end_hint({"last_updated": "2026-11-28T12:00:00+00:00"}) == t
    assert newest_end_hint({"last_updated": None, "metadata": {"end": "2026-11-28T12:00:00Z"}}) == t
    assert newest_end_hint({}) is None
    assert newest_end_hint({"last_updated": "garbage"}) is None
