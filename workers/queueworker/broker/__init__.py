"""What lives in Redis: the key names every part shares (keys) and the queue statistics read from
them in a constant number of round trips (stats; its server-side scripts in stats_lua)."""
