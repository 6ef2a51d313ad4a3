"""Each export format owns its options: the export command's options are a discriminated union on `format`, so an
option the chosen format lacks is refused at every door (exit 2 naming it and the format on the CLI; the 422 is in
tests/unit/test_jobs_kinds.py and test_pictures_routes.py, the console's form in test_console_modules.py). A new
format's option is one field of its own model: this file checks that its flag, job schema and refusal follow."""

from __future__ import annotations

import argparse
from typing import Annotated, Literal, Union

import pytest
from pydantic import BaseModel, ConfigDict, Field, RootModel

from batch.export.camtrap_options import CamtrapOptions
from batch.export.common_options import FormatOptions
from batch.export.options import ExportOptions, union_of
from batch.export.registry import EXPORTERS, ExportFormat
from batch.flags import add_model_arguments
from batch.option_variants import fields_of, form_schema, unwrap, variants_of
from batch.options import location_fields, parse_options
from ground.errors import OptionsError
from trapline.cli import main


def test_each_format_takes_what_every_format_takes_and_its_own_options_only():
    found = variants_of(ExportOptions)
    assert found is not None and found.key == "format" and list(found.models) == list(EXPORTERS)
    for name, model in found.models.items():
        own = set(EXPORTERS[name].options.model_fields) - set(FormatOptions.model_fields)
        assert set(model.model_fields) == set(FormatOptions.model_fields) | own, name
    assert set(found.models["camtrap-dp"].model_fields) >= {"timezone", "deployments", "package_meta"}
    assert "timezone" not in found.models["megadetector"].model_fields
    chosen = unwrap(ExportOptions(tables="t", format="camtrap-dp", out="o", timezone="+01:00"))
    assert isinstance(chosen, CamtrapOptions) and chosen.timezone == "+01:00"


@pytest.mark.parametrize("flags, message", [
    (["--format", "megadetector", "--timezone", "+02:00"], "--timezone: format megadetector has no such option"),
    (["--format", "coco", "--observation-level", "both"], "--observation-level: format coco has no such option"),
])
def test_the_cli_refuses_another_formats_option_with_exit_2(flags, message, tmp_path, capsys):
    code = main(["export", "--tables", str(tmp_path / "t"), "--out", str(tmp_path / "o.json"), *flags])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_a_new_formats_option_is_one_field_of_its_own_model():
    """What `docs/extending.md` promises: the option's flag (its help naming its format), the form's schema, the
    confinement of a path option and the refusal with another format follow from the field alone."""

    class CsvOptions(FormatOptions):
        delimiter: Literal[",", ";"] = Field(",", description="the column separator")
        legend: str | None = Field(None, description="a legend file to write beside")

    formats = {**EXPORTERS, "csv-boxes": ExportFormat("csv-boxes", "boxes as CSV", "x:Y", options=CsvOptions)}
    model = union_of(formats)
    parser = argparse.ArgumentParser()
    add_model_arguments(parser, model)
    flag = parser._option_string_actions["--delimiter"]
    assert flag.choices == [",", ";"] and flag.help.startswith("[--format csv-boxes] the column separator")
    assert parser._option_string_actions["--format"].choices == [*EXPORTERS, "csv-boxes"]
    assert variants_of(model).having("delimiter") == ["csv-boxes"]
    assert form_schema(model)["properties"]["delimiter"]["enum"] == [",", ";"]
    assert location_fields(model) == location_fields(ExportOptions)  # `legend` is no Location: not confined
    assert parse_options(model, {"tables": "t", "format": "csv-boxes", "out": "o", "delimiter": ";"}, "export"
                         ).delimiter == ";"
    with pytest.raises(OptionsError, match="--delimiter: format coco has no such option"):
        parse_options(model, {"tables": "t", "format": "coco", "out": "o", "delimiter": ";"}, "export")


def test_two_variants_cannot_give_one_option_two_types():
    """One flag, one form input, one schema property per name: a clash is refused when the model is read."""

    class Base(BaseModel):
        model_config = ConfigDict(extra="forbid")

    class A(Base):
        kind: Literal["a"]
        size: int = 1

    class B(Base):
        kind: Literal["b"]
        size: str = "1"

    class Both(RootModel[Annotated[Union[A, B], Field(discriminator="kind")]]):  # noqa: UP007
        pass

    with pytest.raises(TypeError, match="'size' is <class 'int'> in 'a' but <class 'str'> in 'b'"):
        fields_of(Both)
