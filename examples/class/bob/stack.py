class Stack:
    def __init__(self):
        self._items = []

    def push(self, item):
        self._items.insert(0, item)

    def pop(self):
        return self._items.pop()

    def peek(self):
        return self._items[0]

    def __len__(self):
        return len(self._items)
