import pytest

from importlib import resources

from processors.catalogue import CatalogueError, parse_catalogue

SHIPPED = resources.files("processors.data").joinpath("catalogue.yaml").read_text()


def test_the_shipped_catalogue_covers_the_three_domains(catalogue):
    assert {c.domain for c in catalogue.categories} == {"public_security", "traffic", "city_management"}
    assert catalogue.get("PS-FIGHT").sla.ack_s == 60
    assert catalogue.get("EM-CROWD").is_joint
    assert catalogue.get("XX-NONE") is None


def test_a_wrong_field_is_refused_naming_the_line_and_the_field():
    broken = SHIPPED.replace("priority: 4", "priority: soon", 1)
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if "priority: soon" in text)
    with pytest.raises(CatalogueError) as err:
        parse_catalogue(broken, "district.yaml")
    assert f"district.yaml:{line}: categories.4.priority" in str(err.value)


def test_a_missing_field_is_refused_naming_the_category():
    broken = SHIPPED.replace("    sla: {ack_s: 60, arrive_s: 480, resolve_s: 3600}\n", "", 1)
    with pytest.raises(CatalogueError, match=r"categories\.0\.sla: Field required"):
        parse_catalogue(broken)


def test_yaml_syntax_errors_name_the_line():
    with pytest.raises(CatalogueError, match=r"cat.yaml:2: not valid YAML"):
        parse_catalogue("categories:\n\t- code: PS-X\n", "cat.yaml")


def test_duplicate_codes_are_refused():
    doubled = SHIPPED + SHIPPED.split("categories:\n", 1)[1].split("  - code: PS-THEFT")[0]
    with pytest.raises(CatalogueError, match="appears twice"):
        parse_catalogue(doubled)


def test_extra_fields_are_kept_for_later_additions_to_the_format():
    extended = SHIPPED.replace("    auxiliary_ok: false\n", "    auxiliary_ok: false\n    handbook: chapter-3\n", 1)
    assert parse_catalogue(extended).categories[0].model_extra == {"handbook": "chapter-3"}
