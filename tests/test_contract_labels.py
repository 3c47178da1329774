from mobstore.actors.testing.contracts import LabelsContract


class TestLabels(LabelsContract):
    pass
