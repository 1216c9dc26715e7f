"""One reading of phone numbers for the plugin, the stub's PBX and the sandbox."""
from pathlib import Path

import pytest

from megaplan_plugin import phones

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("written", ["79161234567", "8 (916) 123-45-67", "+7 916 123 45 67",
                                     "9161234567", "+7(916)1234567"])
def test_every_way_of_writing_a_russian_number_is_one_number(written):
    assert phones.normalize(written) == phones.digits(written) == "79161234567"
    assert phones.national(written) == "9161234567"
    assert phones.display(written) == "+7 (916) 123-45-67"


def test_other_countries_internal_numbers_and_garbage():
    assert phones.display("+44 20 7946 0958") == "+44 20 7946 0958"
    assert phones.digits("101") == "101" and phones.display("101") == "101"
    assert phones.digits("anonymous") == "" and phones.national("anonymous") is None
    assert phones.display("88005553535") == "+7 (800) 555-35-35"
    for bad in ("", "abc", "1" * 40):
        with pytest.raises(phones.InvalidPhone):
            phones.normalize(bad)


def test_no_other_module_reads_phone_numbers_its_own_way():
    readers = sorted(str(p.relative_to(ROOT)) for package in ("megaplan_plugin", "host_stub")
                     for p in (ROOT / package).rglob("*.py") if "import phonenumbers" in p.read_text())
    assert readers == ["megaplan_plugin/phones.py"]


def test_the_pbx_and_the_sandbox_read_numbers_as_the_plugin_does(megaplan_sandbox):
    from host_stub.push import normalize_phone
    assert normalize_phone("8 (916) 123-45-67") == phones.digits("8 (916) 123-45-67")
    megaplan_sandbox.state.add_contractor("ContractorHuman", {"firstName": "Ф", "lastName": "Ф"},
                                          phone="8 (903) 000-11-22")
    assert len(megaplan_sandbox.state.contractors_with_phone("+79030001122")) == 1
