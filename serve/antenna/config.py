"""The serve config's `antenna:` block: trapline as an Antenna processing service (validated here, without Ray)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AntennaPipelineConfig(_Strict):
    """One pipeline Antenna can run: a served detector and, optionally, one of its classifiers."""

    slug: str = Field(..., pattern=SLUG_PATTERN, description=(
        "the pipeline's slug in Antenna, before the detector's version (`SLUG-vN` is what /info lists: Antenna "
        "allows one detection algorithm per pipeline, so a promoted detector is a new pipeline)"))
    name: str | None = Field(None, min_length=1, description="shown in Antenna (default: the slug)")
    description: str = ""
    detector: str = Field(..., min_length=1, description="a model of the serve config's `models`")
    classifier: str | None = Field(None, min_length=1, description=(
        "a classifier the detector routes to (its `classify`); its labels become the algorithm's category map"))


class FetchConfig(_Strict):
    """How the images Antenna names by URL are fetched."""

    timeout_s: float = Field(20.0, gt=0.0, le=600.0, description="connect + read timeout per image")
    max_bytes: int = Field(32 * 1024 * 1024, ge=1, description="larger images are a per-image error")
    concurrency: int = Field(8, ge=1, le=256, description="images fetched at once per request")


class AntennaConfig(_Strict):
    """Serve Antenna's processing-service API (`/livez`, `/readyz`, `/info`, `/process`) at the root of a port of
    its own (Antenna joins `/process` to the registered URL's root, dropping any path)."""

    host: str = Field("127.0.0.1", description="bind address of the Antenna door")
    port: int = Field(8001, ge=1, le=65535, description="its port (not Serve's HTTP port)")
    name: str = Field("trapline", min_length=1, description="the processing service's name in /info")
    description: str = "trapline: versioned camera-trap detectors and classifiers on Ray Serve"
    pipelines: list[AntennaPipelineConfig] = Field(..., min_length=1)
    fetch: FetchConfig = FetchConfig()
    ready_timeout_s: float = Field(4.0, gt=0.0, le=60.0, description=(
        "how long /readyz asks the replicas before answering (Antenna's /info limit is 6 s)"))

    @field_validator("pipelines")
    @classmethod
    def _unique(cls, pipelines: list[AntennaPipelineConfig]) -> list[AntennaPipelineConfig]:
        slugs = [p.slug for p in pipelines]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"each pipeline slug may appear once, got {slugs!r}")
        return pipelines

    def pipeline(self, slug: str) -> AntennaPipelineConfig | None:
        return next((p for p in self.pipelines if p.slug == slug), None)
