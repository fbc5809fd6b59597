import datetime
import os
import time
import zoneinfo


def test_zoneinfo_knows_paris():
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    summer = datetime.datetime(2024, 7, 1, 12, tzinfo=paris)
    winter = datetime.datetime(2024, 1, 1, 12, tzinfo=paris)
    assert summer.utcoffset() == datetime.timedelta(hours=2)
    assert winter.utcoffset() == datetime.timedelta(hours=1)


def test_tz_and_tzset():
    previous = os.environ.get("TZ")
    try:
        os.environ["TZ"] = "Europe/Paris"
        time.tzset()
        assert time.tzname == ("CET", "CEST")
        assert time.localtime(1719835200).tm_hour == 14  # 2024-07-01 12:00 UTC
    finally:
        if previous is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = previous
        time.tzset()
