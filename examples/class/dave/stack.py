class Stack(list):
    """Passes every test of its own, and none of the teacher's."""

    push = list.append

    def pop(self):
        return None

    def peek(self):
        return None
