"""What the tests share: a real aw-server on a free port (`awserver`), fakes
for what a real server cannot be made to do (`fakeaw`), helpers that read the
database and wait with a deadline (`helpers`), the chaos harness (`chaos`),
and builders of big or planted histories (`bigdb`, `coverage_history`).
The fixtures are in tests/conftest.py."""
