"""Orders: an app whose agent counts orders per account.

Files django-faust discovers here (FAUST["AUTODISCOVER_MODULES"]):

``agents.py``  the ``orders`` topic, the agent reading it, a timer that
               invents orders, and a ``manage.py faust simulate`` command
``tables.py``  the tables the agent keeps
``views.py``   the order form (a sync view) and the tables (an async view)

and ``signals.py``, which publishes every change of a ``StoredOrder`` row to
the ``order-changes`` topic after its transaction commits.
"""
