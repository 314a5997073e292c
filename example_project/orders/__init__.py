"""Orders: an app whose agent counts orders per account.

Files django-faust discovers here (FAUST["AUTODISCOVER_MODULES"]):

``agents.py``  the ``orders`` topic, the agent reading it, a timer that
               invents orders, and a ``manage.py faust simulate`` command
``tables.py``  the tables the agent keeps
``views.py``   async views that send orders and read the tables
"""
