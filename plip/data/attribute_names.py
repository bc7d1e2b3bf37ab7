"""Names of the evaluated attributes of the pedestrian attribute benchmarks.

Each list is in the order of the columns of the dataset's distributed annotation file
(the order the :mod:`plip.data.attributes` readers of ``.mat`` files return), spelled
exactly as those files spell them, which is also how the Rethinking-of-PAR and
strong-baseline preprocessing scripts (``format_*.py``, ``transform_*.py``) copy them
into their ``dataset_all.pkl`` files:

- PA-100K: all 26 attributes of ``annotation.mat`` (``attributes``).
- PETA: the first 35 of the 105 attributes of ``PETA.mat`` (the "evaluated" ones).
- RAPv1: the first 51 of the 92 ``attribute_eng`` names of ``RAP_annotation.mat``.
- RAPv2: the 54 attributes ``selected_attribute`` picks out of 152, in that order. The
  release spells the gender attribute ``"Femal"``; it is kept as released so that names
  read from the files, from these lists and from partition pickles agree.

Rethinking-of-PAR evaluates the same attributes in a grouped order (head, upper body,
lower body, feet, bags, age, gender, others); :data:`RETHINKING_GROUP_ORDER` gives that
permutation of these lists.
"""

from __future__ import annotations

__all__ = [
    "PA100K_ATTRIBUTES",
    "PETA_ATTRIBUTES",
    "RAPV1_ATTRIBUTES",
    "RAPV2_ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "RETHINKING_GROUP_ORDER",
]

PA100K_ATTRIBUTES: tuple[str, ...] = (
    "Female", "AgeOver60", "Age18-60", "AgeLess18", "Front", "Side", "Back", "Hat",
    "Glasses", "HandBag", "ShoulderBag", "Backpack", "HoldObjectsInFront", "ShortSleeve",
    "LongSleeve", "UpperStride", "UpperLogo", "UpperPlaid", "UpperSplice", "LowerStripe",
    "LowerPattern", "LongCoat", "Trousers", "Shorts", "Skirt&Dress", "boots",
)  # fmt: skip

PETA_ATTRIBUTES: tuple[str, ...] = (
    "personalLess30", "personalLess45", "personalLess60", "personalLarger60",
    "carryingBackpack", "carryingOther", "lowerBodyCasual", "upperBodyCasual",
    "lowerBodyFormal", "upperBodyFormal", "accessoryHat", "upperBodyJacket",
    "lowerBodyJeans", "footwearLeatherShoes", "upperBodyLogo", "hairLong", "personalMale",
    "carryingMessengerBag", "accessoryMuffler", "accessoryNothing", "carryingNothing",
    "upperBodyPlaid", "carryingPlasticBags", "footwearSandals", "footwearShoes",
    "lowerBodyShorts", "upperBodyShortSleeve", "lowerBodyShortSkirt", "footwearSneaker",
    "upperBodyThinStripes", "accessorySunglasses", "lowerBodyTrousers", "upperBodyTshirt",
    "upperBodyOther", "upperBodyVNeck",
)  # fmt: skip

RAPV1_ATTRIBUTES: tuple[str, ...] = (
    "Female", "AgeLess16", "Age17-30", "Age31-45", "BodyFat", "BodyNormal", "BodyThin",
    "Customer", "Clerk", "hs-BaldHead", "hs-LongHair", "hs-BlackHair", "hs-Hat",
    "hs-Glasses", "hs-Muffler", "ub-Shirt", "ub-Sweater", "ub-Vest", "ub-TShirt",
    "ub-Cotton", "ub-Jacket", "ub-SuitUp", "ub-Tight", "ub-ShortSleeve", "lb-LongTrousers",
    "lb-Skirt", "lb-ShortSkirt", "lb-Dress", "lb-Jeans", "lb-TightTrousers",
    "shoes-Leather", "shoes-Sport", "shoes-Boots", "shoes-Cloth", "shoes-Casual",
    "attach-Backpack", "attach-SingleShoulderBag", "attach-HandBag", "attach-Box",
    "attach-PlasticBag", "attach-PaperBag", "attach-HandTrunk", "attach-Other",
    "action-Calling", "action-Talking", "action-Gathering", "action-Holding",
    "action-Pusing", "action-Pulling", "action-CarrybyArm", "action-CarrybyHand",
)  # fmt: skip

RAPV2_ATTRIBUTES: tuple[str, ...] = (
    "Femal", "AgeLess16", "Age17-30", "Age31-45", "Age46-60", "BodyFat", "BodyNormal",
    "BodyThin", "Customer", "Employee", "hs-BaldHead", "hs-LongHair", "hs-BlackHair",
    "hs-Hat", "hs-Glasses", "ub-Shirt", "ub-Sweater", "ub-Vest", "ub-TShirt", "ub-Cotton",
    "ub-Jacket", "ub-SuitUp", "ub-Tight", "ub-ShortSleeve", "ub-Others", "lb-LongTrousers",
    "lb-Skirt", "lb-ShortSkirt", "lb-Dress", "lb-Jeans", "lb-TightTrousers",
    "shoes-Leather", "shoes-Sports", "shoes-Boots", "shoes-Cloth", "shoes-Casual",
    "shoes-Other", "attachment-Backpack", "attachment-ShoulderBag", "attachment-HandBag",
    "attachment-Box", "attachment-PlasticBag", "attachment-PaperBag",
    "attachment-HandTrunk", "attachment-Other", "action-Calling", "action-Talking",
    "action-Gathering", "action-Holding", "action-Pushing", "action-Pulling",
    "action-CarryingByArm", "action-CarryingByHand", "action-Other",
)  # fmt: skip

ATTRIBUTE_NAMES: dict[str, tuple[str, ...]] = {
    "pa100k": PA100K_ATTRIBUTES,
    "peta": PETA_ATTRIBUTES,
    "rapv1": RAPV1_ATTRIBUTES,
    "rapv2": RAPV2_ATTRIBUTES,
}

# Rethinking-of-PAR's ``group_order`` (dataset/pedes_attr/preprocess/format_*.py):
# position i of its evaluated attributes is column RETHINKING_GROUP_ORDER[name][i] here.
RETHINKING_GROUP_ORDER: dict[str, tuple[int, ...]] = {
    "pa100k": (7, 8, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 9, 10, 11, 12, 1, 2,
               3, 0, 4, 5, 6),
    "peta": (10, 18, 19, 30, 15, 7, 9, 11, 14, 21, 26, 29, 32, 33, 34, 6, 8, 12, 25, 27, 31,
             13, 23, 24, 28, 4, 5, 17, 20, 22, 0, 1, 2, 3, 16),
    "rapv1": (9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
              29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 1, 2, 3, 0, 4, 5, 6, 7,
              8, 43, 44, 45, 46, 47, 48, 49, 50),
    "rapv2": (10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
              30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 1, 2, 3, 4, 0, 5, 6,
              7, 8, 9, 45, 46, 47, 48, 49, 50, 51, 52, 53),
}  # fmt: skip
