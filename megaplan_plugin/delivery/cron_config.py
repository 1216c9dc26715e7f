"""Configuration for ``rq cron megaplan_plugin.delivery.cron_config``: RQ's cron scheduler
imports this module and takes what it registers. Nothing else imports it."""
from rq import cron

from megaplan_plugin.delivery.periodic import schedule

for entry in schedule():
    cron.register(**entry)
