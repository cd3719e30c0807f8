"""CDS Hooks and FHIR R4 for the decision tool: the EHR-facing side (see docs/cds-hooks.md)."""

from tailor.cds.auth import EhrVerifier
from tailor.cds.cards import SERVICE_ID, cards_of, discovery
from tailor.cds.fhir import FhirInputError, inputs_from_prefetch, prefetch_templates

__all__ = ["SERVICE_ID", "EhrVerifier", "FhirInputError", "cards_of", "discovery",
           "inputs_from_prefetch", "prefetch_templates"]
