"""Deferred tiers: items collected into provider batch APIs at batch prices (docs/cost-levers.md).

Workers stage a deferred tier's items in the ledger (pipeline.stage_for_provider_batch); the
poller (poller.py) forms provider batches, submits them, polls them and ingests their results;
requests.py builds and prices the calls, ingest.py turns results into item outcomes.
"""
