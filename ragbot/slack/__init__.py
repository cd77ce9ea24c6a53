"""The Slack surface: a Bolt app mounted at POST /slack/events, a translator around Pipeline.ask.

route.py     mount_slack(): the FastAPI route, signature check, dispatch off the event loop
bolt.py      the Bolt app: listeners (mention, direct message, slash command), dedupe in the store
blocks.py    Block Kit replies: mrkdwn escaping, Slack's limits, the disclaimer on every reply;
             the rating buttons and the comment modal
ratings.py   the rating buttons' clicks: store the rating, redraw the message
comments.py  the "What was missing?" modal's submission: store the comment
"""

from ragbot.slack.route import mount_slack

__all__ = ["mount_slack"]
