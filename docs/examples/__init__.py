"""The async guide's examples (docs/async-guide.md) and the tests that run them.

tests/test_guide_examples.py copies this directory into a baked project as the
package `guide_examples` and runs its tests with the project's pytest.
"""
