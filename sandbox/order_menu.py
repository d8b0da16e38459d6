"""The words generated Clover orders are made of: menu, names, platform spellings.

Written for lockerlink's sandbox in the shapes restaurant data shows: accents,
mixed languages, emoji, trailing spaces, staff abbreviations and misspellings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MenuItem:
    name: str
    price_cents: int
    unit_name: str | None = None  # set for items sold by weight


MENU = (
    MenuItem("Cheeseburger", 1195),
    MenuItem("Crème brûlée", 750),
    MenuItem("Jalapeño poppers ", 895),
    MenuItem("Phở bò 🍜", 1450),
    MenuItem("Bánh mì", 1050),
    MenuItem("Café au lait", 425),
    MenuItem("Large Fries", 495),
    MenuItem("Smørrebrød", 1295),
    MenuItem("Pad Thai\n(spicy)", 1375),
    MenuItem("Coca-Cola 355ml", 275),
    MenuItem("Caesar salad", 995),
    MenuItem("Açaí bowl", 1125),
    MenuItem("Croissant", 350),
    MenuItem("Ramen 🔥", 1595),
)
WEIGHED = (
    MenuItem("Olives (lb)", 899, "lb"),
    MenuItem("Smoked salmon", 3200, "kg"),
    MenuItem("Cherry tomatoes", 499, "lb"),
)
MODIFIERS = (
    ("extra cheese", 100),
    ("no onions", 0),
    ("Add bacon", 250),
    ("sauce à part", 0),
    ("GF bun", 150),
    ("oat milk ", 75),
    ("double shot", 95),
)

FIRST_NAMES = (
    "José", "Zoë", "Renée", "Björn", "Priya", "Chidi", "Siobhán", "Kwame",
    "Lucía", "Ngọc", "Omar", "Hana", "Mateus", "Inès", "Yusuf", "Dmitri",
    "Aoife", "Tomasz", "Keisha", "Ravi",
)  # fmt: skip
LAST_NAMES = (
    "García", "Nguyễn", "O'Brien", "Müller", "Okafor", "Smith", "Kowalski",
    "Dubois", "Tanaka", "Silva", "Haddad", "Lindqvist",
)  # fmt: skip

# How each platform's name appears when staff type it or an integrator writes it.
PLATFORM_SPELLINGS: dict[str, tuple[str, ...]] = {
    "uber_eats": ("uber eats", "UBER EATS", "Uber", "ubereats", "uber eat", "UE"),
    "doordash": ("doordash", "DOORDASH", "door dash", "DD", "Doordash", "dordash"),
    "grubhub": ("grubhub", "GRUBHUB", "grub hub", "Grub", "GH", "grubhb"),
    "skipthedishes": ("skip", "SKIP THE DISHES", "Skip the dishes", "skipthedish"),
    "postmates": ("postmates", "POSTMATES", "post mates", "Postmate"),
    "eat24": ("e24", "eat24", "EAT 24", "Eat 24"),
}
PLATFORM_LABELS = {
    "uber_eats": "Uber Eats",
    "doordash": "DoorDash",
    "grubhub": "Grubhub",
    "skipthedishes": "SkipTheDishes",
    "postmates": "Postmates",
    "eat24": "Eat24",
}
NOTE_EXTRAS = ("extra napkins 🙏", "no cutlery", "allergie: noix", "ring bell ", "")


@dataclass(frozen=True)
class Person:
    """A customer: names as they are written, and a phone number."""

    first: str
    last: str
    phone: str


def draw_person(chooser: random.Random) -> Person:
    phone = f"+1 555 {chooser.randrange(1000000):07d}"
    return Person(chooser.choice(FIRST_NAMES), chooser.choice(LAST_NAMES), phone)


def customer_record(person: Person) -> dict[str, Any]:
    """The person as a Clover customer object."""
    return {
        "firstName": person.first,
        "lastName": person.last,
        "phoneNumbers": {"elements": [{"phoneNumber": person.phone}]},
    }


def draw_clock_time(chooser: random.Random) -> str:
    """A pickup time of day as staff and integrators write it, like 18:37."""
    return f"{chooser.randrange(11, 23):02d}:{chooser.randrange(60):02d}"
