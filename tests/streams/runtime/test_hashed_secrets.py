"""Passwords and device secrets as argon2id hashes: a match, a miss, an unknown name refused alike, and the slow
check kept off the event loop that serves every other request."""

import asyncio

from streams.runtime import hashed_secrets


def test_a_secret_matches_its_hash_and_nothing_else_does():
    async def main():
        stored = await hashed_secrets.hash_secret("correct horse")
        assert stored.startswith("$argon2id$") and "correct horse" not in stored
        assert await hashed_secrets.matches(stored, "correct horse")
        assert not await hashed_secrets.matches(stored, "correct hors")
        assert not await hashed_secrets.matches(None, "correct horse")  # no such name
        assert not await hashed_secrets.matches("not a hash", "correct horse")

    asyncio.run(main())


def test_the_check_leaves_the_event_loop_free_meanwhile():
    async def main():
        stored = await hashed_secrets.hash_secret("s3cret")
        for check in (hashed_secrets.matches(stored, "s3cret"), hashed_secrets.matches(None, "s3cret")):
            task = asyncio.create_task(check)
            turns = 0
            while not task.done():
                turns += 1  # the loop got round to this coroutine while the check was still under way
                await asyncio.sleep(0)
            assert turns > 1

    asyncio.run(main())
