"""The operator listener: instance documents, user data, statistics, previews, health."""
