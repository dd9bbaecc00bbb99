"""The raw TCP echo suite: iodine's native handlers against bare uvloop."""
