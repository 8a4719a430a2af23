"""The models the lessons train."""
