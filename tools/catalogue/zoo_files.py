"""zoo/ as the catalogue scripts read and write it: JSON with indent 1 and a final newline, and
preprocessing.json's recipes sorted by name, where a recipe already there is checked, never changed."""
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def zoo_path(file):
    """The path of `file` in zoo/."""
    return os.path.join(ROOT, "zoo", file)


def write_zoo_json(file, doc):
    """Writes zoo/`file` in the catalogue's layout."""
    with open(zoo_path(file), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def load_recipes():
    """preprocessing.json's document and its recipes (the same dict, to add to)."""
    pre = json.load(open(zoo_path("preprocessing.json")))
    return pre, pre["recipes"]


def add_recipe(recipes, name, recipe):
    """Adds a recipe, or checks that the one of that name is the same."""
    if name in recipes:
        assert recipes[name] == recipe, (name, recipes[name], recipe)
    else:
        recipes[name] = recipe


def write_recipes(pre, recipes):
    """Writes preprocessing.json with the recipes sorted by name."""
    pre["recipes"] = dict(sorted(recipes.items()))
    write_zoo_json("preprocessing.json", pre)
