"""The field API (`patrol field`): authenticated field units' events in, each unit's own orders out, and the
field-unit web app. See streams/field_api/app.py."""
