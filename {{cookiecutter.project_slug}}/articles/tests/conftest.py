import pytest
from django.contrib.auth import get_user_model

from core.models import ApiToken


async def user_with_token(username: str) -> tuple:
    user = await get_user_model().objects.acreate(username=username)
    _, raw = await ApiToken.aissue(user)
    return user, {"Authorization": f"Bearer {raw}"}


@pytest.fixture
async def author():
    return await user_with_token("ada")


@pytest.fixture
async def other():
    return await user_with_token("grace")
