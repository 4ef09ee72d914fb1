"""Doctor checks of the services pact-bot talks to: GitHub (the App, its key, its webhook
secret) and the model provider.

Each makes a real, cheap call, so a wrong key or an unreachable API shows before the first job.
"""

from __future__ import annotations

from typing import Any

from pact_bot.agent import provider as prov
from pact_bot.doctor_check import TIMEOUT, Check
from pact_bot.settings import Settings


def _status(e: BaseException) -> int | None:
    resp = getattr(e, "response", None)
    code = getattr(resp, "status_code", None)
    return code if isinstance(code, int) else getattr(e, "status_code", None)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


async def check_github(settings: Settings) -> list[Check]:
    """App JWT accepted (GET /app), then installations listed (GET /app/installations)."""
    jwt_name, inst_name = "GitHub App JWT accepted", "App installed"
    missing = [v for v in settings.missing_app_vars() if v != "GITHUB_WEBHOOK_SECRET"]
    if missing:
        fix = "run `pact-bot setup` to register the App, or set " + ", ".join(missing)
        return [
            Check(jwt_name, False, f"{', '.join(missing)} not set", fix),
            Check(inst_name, False, "needs the App's credentials", fix),
        ]
    from githubkit import AppAuthStrategy, GitHub

    assert settings.github_private_key is not None
    auth = AppAuthStrategy(
        str(settings.github_app_id), settings.github_private_key.get_secret_value()
    )
    async with GitHub(
        auth, base_url=settings.github_api_url, http_cache=False, auto_retry=False, timeout=TIMEOUT
    ) as gh:
        try:
            app = (await gh.rest.apps.async_get_authenticated()).json()
        except Exception as e:
            status = _status(e)
            if status in (401, 403, 404):
                detail = f"{settings.github_api_url} answered {status} to GET /app"
                fix = (
                    "GITHUB_APP_ID and GITHUB_PRIVATE_KEY must belong to the same App: copy the "
                    "App ID from the App's settings page and generate a new private key there"
                )
            else:
                detail = f"cannot reach {settings.github_api_url} ({_first_line(e)})"
                fix = (
                    "check GITHUB_API_URL (Enterprise Server: https://HOST/api/v3) and the network"
                )
            skip = Check(inst_name, False, "not checked: the JWT was not accepted", fix)
            return [Check(jwt_name, False, detail, fix), skip]
        slug = app.get("slug") or app.get("name") or "?"
        checks = [Check(jwt_name, True, f"App {slug} (id {app.get('id')}) on {settings.web_url}")]
        install_url = (
            f"{app.get('html_url') or f'{settings.web_url}/apps/{slug}'}/installations/new"
        )
        try:
            installs = (await gh.rest.apps.async_list_installations(per_page=100)).json()
        except Exception as e:
            checks.append(
                Check(
                    inst_name,
                    False,
                    f"GET /app/installations failed ({_first_line(e)})",
                    "retry; if it persists, check GitHub's status and GITHUB_API_URL",
                )
            )
            return checks
        if not installs:
            checks.append(
                Check(
                    inst_name,
                    False,
                    "the App has no installations",
                    f"install it on your repositories: {install_url}",
                )
            )
        else:
            accounts = [str((i.get("account") or {}).get("login", "?")) for i in installs]
            shown = ", ".join(accounts[:5]) + (", …" if len(accounts) > 5 else "")
            checks.append(Check(inst_name, True, f"{len(installs)} installation(s): {shown}"))
        return checks


def check_webhook_secret(settings: Settings) -> Check:
    name = "webhook secret set"
    secret = settings.github_webhook_secret
    if secret is None or not secret.get_secret_value():
        return Check(
            name,
            False,
            "GITHUB_WEBHOOK_SECRET is not set (/webhook answers 503)",
            "set GITHUB_WEBHOOK_SECRET to the secret in the App's webhook settings",
        )
    if len(secret.get_secret_value()) < 16:
        return Check(
            name,
            False,
            "GITHUB_WEBHOOK_SECRET is shorter than 16 characters",
            "set a long random secret in the App's webhook settings and in GITHUB_WEBHOOK_SECRET",
        )
    return Check(name, True, "GITHUB_WEBHOOK_SECRET is set; deliveries are verified with it")


async def check_anthropic(settings: Settings) -> Check:
    """`count_tokens` is free and needs a valid key and model: the cheapest real call."""
    name = "Anthropic key accepted"
    if settings.anthropic_api_key is None or not settings.anthropic_api_key.get_secret_value():
        return Check(
            name,
            False,
            "ANTHROPIC_API_KEY is not set",
            "set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for a gateway)",
        )
    import anthropic  # not at the top: ~2 s to import

    model = settings.resolve_model(None)
    where = settings.anthropic_base_url or "the Anthropic API"
    client = anthropic.AsyncAnthropic(
        api_key=settings.anthropic_api_key.get_secret_value(),
        base_url=settings.anthropic_base_url,
        max_retries=1,
        timeout=TIMEOUT,
    )
    try:
        result = await client.messages.count_tokens(
            model=model, messages=[{"role": "user", "content": "pact-bot doctor"}]
        )
    except anthropic.AuthenticationError:
        return Check(
            name,
            False,
            f"{where} refused ANTHROPIC_API_KEY (401)",
            "set ANTHROPIC_API_KEY to a valid key (your gateway's key behind a gateway)",
        )
    except anthropic.PermissionDeniedError:
        return Check(
            name,
            False,
            f"{where} denied the key access (403)",
            "use a key of a workspace allowed to call the Messages API",
        )
    except anthropic.NotFoundError:
        return Check(
            name,
            False,
            f"{where} does not know the model {model} (404)",
            "set PACT_MODEL (or PACT_MODEL_SONNET) to a model your key can use",
        )
    except anthropic.APIStatusError as e:
        return Check(
            name,
            False,
            f"{where} answered {e.status_code}",
            "retry later; check ANTHROPIC_BASE_URL if it persists",
        )
    except anthropic.APIConnectionError as e:
        return Check(
            name,
            False,
            f"cannot reach {where} ({_first_line(e)})",
            "check ANTHROPIC_BASE_URL and the network (proxies: HTTPS_PROXY)",
        )
    finally:
        await client.close()
    return Check(name, True, f"{model} via {where} ({result.input_tokens} tokens counted)")


PROVIDER_CHECK = {
    "anthropic": "Anthropic key accepted",
    "bedrock": "Bedrock credentials accepted",
    "vertex": "Vertex credentials accepted",
}


async def check_provider(settings: Settings) -> Check:
    """The PACT_PROVIDER's credentials: present and well-formed, then the cheapest real call.

    Vertex counts tokens (free). Bedrock has no free call the SDK offers, so it asks for one
    output token: a fraction of a cent.
    """
    provider = settings.pact_provider
    if provider == "anthropic":
        return await check_anthropic(settings)
    import anthropic  # not at the top: ~2 s to import

    name = PROVIDER_CHECK[provider]
    fix_creds = f"set {prov.NEEDS[provider]} in the environment of pact-bot"
    try:
        if provider == "bedrock":
            auth = prov.bedrock_auth(settings)
            where = f"Bedrock in {auth.region} ({auth.source} credentials)"
        else:
            vauth = prov.vertex_auth(settings)
            where = f"Vertex in {vauth.region}, project {vauth.project} ({vauth.source})"
        client = prov.model_client(settings, max_retries=1, timeout=TIMEOUT)
    except prov.MissingModelKey as e:
        detail = f"{e.what} ({e.cause})" if e.cause else e.what
        return Check(name, False, detail, fix_creds)
    model = settings.resolve_model(None)
    messages: Any = [{"role": "user", "content": "pact-bot doctor"}]
    try:
        if provider == "bedrock":
            await client.messages.create(model=model, max_tokens=1, messages=messages)
            probe = "a 1-token call answered"
        else:
            counted = await client.messages.count_tokens(model=model, messages=messages)
            probe = f"{counted.input_tokens} tokens counted"
    except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as e:
        return Check(name, False, f"{where} refused the credentials ({e.status_code})", fix_creds)
    except (anthropic.NotFoundError, anthropic.BadRequestError) as e:
        return Check(
            name,
            False,
            f"{where} does not offer the model {model} ({e.status_code})",
            "enable the model for your account, or set PACT_MODEL (or PACT_MODEL_SONNET) to "
            "an id the provider lists",
        )
    except anthropic.APIStatusError as e:
        return Check(name, False, f"{where} answered {e.status_code}", "retry later")
    except anthropic.APIConnectionError as e:
        return Check(
            name,
            False,
            f"cannot reach {where} ({_first_line(e)})",
            "check ANTHROPIC_BEDROCK_BASE_URL / ANTHROPIC_VERTEX_BASE_URL and the network",
        )
    except Exception as e:  # google-auth's RefreshError: the token endpoint refused the key
        if type(e).__name__ != "RefreshError":
            raise
        return Check(name, False, f"Google refused the credentials ({_first_line(e)})", fix_creds)
    finally:
        await client.close()
    return Check(name, True, f"{model} via {where}: {probe}")
