import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    # The zoo's tests run many small models; on a shared 2-core machine intra-op threads only contend.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
