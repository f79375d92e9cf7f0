"""A plugin whose import fails, as when a dependency is missing."""

import s3proxy_dependency_that_does_not_exist  # noqa: F401
