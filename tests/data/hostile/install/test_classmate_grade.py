def test_right():
    assert 1 == 1


def test_wrong():
    assert 1 == 2
