"""Programmatic simulators of the two roles: the embedded default that needs no model.

* ``ScenarioUserSimulator`` plays the user of a task's scenario (tau-bench style): it states its requests
  in plain words, answers only what the agent asks from the facts it knows (hidden facts only when asked),
  confirms a described action when the details match its facts and declines otherwise, moves on to its
  next request when the agent reports a result, and ends with the stop marker when it has nothing left
  to ask (or when it runs out of patience). It never sees the tools or the gold actions.
* ``OracleAgentSimulator`` reaches the gold outcome the way a good agent would: it makes the lookups,
  asks the user for facts it has not been told, asks for confirmation before the writes the policy
  names, refuses what the policy forbids, and tells the user the results in plain words. It knows the
  task's gold steps (it is an oracle), but it only acts on a fact once the user has said it.
  With probability ``error_rate`` an episode gets one injected mistake of a kind from ``MISTAKE_KINDS``,
  recorded in ``mistakes`` so the filter's precision and recall can be measured. A wrong argument that
  the tool rejects and the agent then corrects is recorded as ``recovered_wrong_argument``: not an error
  (the paper keeps trajectories with recovered tool errors).

Both are seeded; an episode with the same seeds gives the same messages.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from agentscaler_dagster.contracts import GoldStep, ScenarioRequest, Task, UserScenario
from agentscaler_dagster.judge import is_affirmative, is_negative

STOP_MARKER = "###STOP###"
MISTAKE_KINDS = ("wrong_argument", "skipped_lookup", "extra_call", "wrong_tool", "hallucinated_id",
                 "premature_stop", "policy_violation", "outputs_not_communicated")
RECOVERED = "recovered_wrong_argument"

_CONFIRM_ASK = re.compile(r"\b(shall i|should i|do you want me to|would you like me to|may i|can i go ahead|"
                          r"go ahead\?|proceed\?|do you confirm|please confirm)", re.I)
_QUESTION = re.compile(r"\?|\b(could you (tell|give|provide)|please (tell|give|provide|share)|what is your|"
                       r"may i have)\b", re.I)
_CLOSING = re.compile(r"\b(anything else|something else|else (i|can i) (can )?(help|do))\b", re.I)
_GENERIC = frozenset({"the", "of", "a", "an", "my", "your", "number", "date", "name", "type", "status", "id",
                      "other", "third", "new", "and", "with", "for"})


def _mentions(text: str, phrase: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(phrase.lower()) + r"(?!\w)", (text or "").lower()) is not None


def _told(text: str, fact) -> bool:
    """Whether the user has said the fact: a distinctive value anywhere, a short one ("2", "yes") only next
    to the fact's name ("quantity 2", "the quantity is 2") - "customer-2" does not tell a quantity."""
    said = str(fact.said)
    if len(said) >= 4 and not said.replace(".", "").isdigit():
        return _mentions(text, said)
    last = fact.name.split()[-1]
    return re.search(r"(?<!\w)" + re.escape(last) + r"(?: is| of| to| at)?:? " + re.escape(said) + r"(?!\w)",
                     text or "", re.I) is not None


# ---- the user ---------------------------------------------------------------------------------

_GREETINGS = ("Hi! ", "Hello. ", "Hi there. ", "Good morning. ", "")
_NEXT = ("Thanks. Also, {}", "Great, thank you. One more thing: {}", "OK. Next, {}", "Thanks! {}")
_DONE = ("Thank you, that's everything I needed.", "Great, that's all for today, thanks!",
         "Perfect, thank you for your help.")
_DONE_REFUSED = ("I see. Thanks for explaining.", "OK, I understand. Thank you anyway.")
_YESES = ("Yes, please go ahead.", "Yes, that's right.", "Yes, please.", "Sure, go ahead.")


def scenario_of(task: Task) -> UserScenario:
    """The task's scenario; an old task without one gets a single request: its intent."""
    if task.scenario is not None:
        return task.scenario
    return UserScenario(persona="You are a customer of this service.",
                        requests=[ScenarioRequest(text=task.user_intent, kind="other")])


class ScenarioUserSimulator:
    """The user of a task's scenario, played by rules (a simulator, not a model)."""

    name = "scenario-user-simulator"
    nonblocking = True  # no I/O: the asyncio episode engine calls it on its loop
    reads_messages_only = True  # the episode need not copy the conversation for it

    def __init__(self, seed: int, scenario: UserScenario | None = None, patience: int = 3):
        self.seed = seed
        self._rng = random.Random(seed)
        self.scenario = scenario
        self.patience = patience
        self._turn = 0
        self._unknown = 0
        self._said = 0

    def bind_task(self, task: Task) -> None:
        self.scenario = scenario_of(task)

    def _turns(self) -> list[list[ScenarioRequest]]:
        turns: dict[int, list[ScenarioRequest]] = {}
        for request in (self.scenario.requests if self.scenario else []):
            turns.setdefault(request.turn, []).append(request)
        return [turns[t] for t in sorted(turns)]

    def start(self, user_intent: str) -> str:
        if self.scenario is None:
            self.scenario = UserScenario(persona="You are a customer.", requests=[ScenarioRequest(text=user_intent, kind="other")])
        self._turn = 0
        turns = self._turns()
        name = re.match(r"You are ([A-Z][\w'-]+(?: [A-Z][\w'-]+)*),", self.scenario.persona)
        intro = f"this is {name.group(1)}. " if name else ""
        greeting = self._rng.choice(_GREETINGS)
        if intro:
            greeting = (greeting or "Hi").rstrip(". !") + ", " + intro
        return self._say(greeting + " ".join(r.text for r in (turns[0] if turns else [])) or user_intent)

    def _say(self, text: str) -> str:
        self._said += 1
        return text.strip()

    def reply(self, messages: list[dict]) -> str | None:
        text = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "assistant"
                     and m.get("content")), "")
        turns = self._turns()
        if self._said > 4 + 4 * len(self.scenario.requests):
            return self._say(f"Sorry, I have to go now. {STOP_MARKER}")
        if _CONFIRM_ASK.search(text) and "?" in text:
            return self._say(self._confirm(text))
        if _QUESTION.search(text) and not _CLOSING.search(text):
            answer = self._answer(text)
            if answer:
                self._unknown = 0
                return self._say(answer)
            self._unknown += 1
            if self._unknown >= self.patience:
                return self._say(f"I don't have that information, so I'll leave it here. {STOP_MARKER}")
            return self._say(self._rng.choice(("Sorry, I don't know that.", "I'm not sure; I don't have that.")))
        # a statement: the agent has dealt with the current requests
        self._turn += 1
        if self._turn < len(turns):
            body = " ".join(r.text for r in turns[self._turn])
            if not re.match(r"I\b", body):
                body = body[:1].lower() + body[1:]
            return self._say(self._rng.choice(_NEXT).format(body))
        refused = bool(turns) and any(r.forbidden for r in turns[-1])
        return self._say(f"{self._rng.choice(_DONE_REFUSED if refused else _DONE)} {STOP_MARKER}")

    def _current_turn(self) -> int:
        turns = sorted({r.turn for r in self.scenario.requests})
        return turns[min(self._turn, len(turns) - 1)] if turns else 0

    def _asked_facts(self, text: str) -> list:
        facts = self.scenario.facts
        full = [f for f in facts if _mentions(text, f.name)]
        # "other booking ID" mentions "booking ID" too: the longer name is what was asked
        full = [f for f in full if not any(g is not f and f.name in g.name for g in full)]
        if full:
            return full
        scored = []
        for f in facts:
            keys = [w for w in f.name.lower().split() if w not in _GENERIC and len(w) >= 3]
            hits = sum(_mentions(text, w) for w in keys)
            if hits:
                scored.append((hits, f))
        best = max((h for h, _ in scored), default=0)
        return [f for h, f in scored if h == best]

    def _answer(self, text: str) -> str | None:
        facts = self._asked_facts(text)
        if not facts:
            return None
        parts = [f"the {f.name} is {f.said}" for f in facts]
        sentence = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        return sentence[:1].upper() + sentence[1:] + "."

    def _confirm(self, text: str) -> str:
        by_kind: dict[str, list] = {}
        current = {k for k, r in enumerate(self.scenario.requests) if r.turn == self._current_turn()}
        checked = set()
        for f in self.scenario.facts:  # "booking ID" and "other booking ID" are two facts of one kind
            if f.name.split()[-1] == "ID":
                continue  # the user checks what is to be done, not the agent's references
            kind = re.sub(r"^(other|third|fourth|fifth|sixth) ", "", f.name)
            by_kind.setdefault(kind, []).append(f)
            if f.request in current:
                checked.add(kind)  # what it wants now is what it checks
        for name, facts in sorted((k, v) for k, v in by_kind.items() if k in checked):
            # "address" inside "shipping address" is another fact's name, not this one
            rest = text
            for longer in sorted(by_kind, key=len, reverse=True):
                if longer != name and name in longer:
                    rest = re.sub(re.escape(longer), " ", rest, flags=re.I)
            # "... with priority high, ticket ID ..." names the field and then its value; a field's name inside
            # some other value ("Priority ticket: ...") is not a claim about it
            field_value = re.search(r"(?:\bwith |, |\bset (?:the )?)" + re.escape(name) + r"\b", rest, re.I)
            if field_value and not any(_mentions(text, f.said) for f in facts):
                return f"No, that's not right: the {name} should be {facts[0].said}."
        return self._rng.choice(_YESES)


# ---- the agent --------------------------------------------------------------------------------

_ASKS = ("Could you tell me the {}?", "To do that I need the {}. Could you give it to me?",
         "Sure. What is the {}?", "I can help with that. Could you provide the {}?")
_CONFIRMS = ("I'm about to {}. Shall I go ahead?", "To confirm: I will {}. Do you want me to proceed?",
             "I can {} now. Shall I go ahead?")
_OPENERS = ("", "Thanks for waiting. ", "All right. ")
_CLOSERS = ("Is there anything else I can help you with?", "Anything else I can do for you?", "")


class OracleAgentSimulator:
    """A good agent that knows the task's gold steps (a simulator, not a model); see the module docstring."""

    name = "oracle-agent-simulator"
    nonblocking = True
    reads_messages_only = True

    def __init__(self, seed: int, error_rate: float = 0.15, mistake_kinds: tuple[str, ...] = MISTAKE_KINDS):
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
        unknown = sorted(set(mistake_kinds) - set(MISTAKE_KINDS))
        if unknown:
            raise ValueError(f"unknown mistake kinds {unknown}; known: {', '.join(MISTAKE_KINDS)}")
        self.seed = seed
        self.error_rate = error_rate
        self.mistake_kinds = tuple(mistake_kinds)
        self._rng = random.Random(seed)
        self.mistakes: list[str] = []
        self.sampling = {"policy": "oracle-simulator", "seed": seed, "error_rate": error_rate}
        self.task: Task | None = None
        self._agenda: list[tuple[str, int]] = []
        self._pos = 0
        self._calls = 0

    def reset(self, seed: int) -> None:
        """A fresh agent for the next episode (the evaluation reuses one agent per model)."""
        self.__init__(seed, self.error_rate, self.mistake_kinds)

    def clone(self) -> "OracleAgentSimulator":
        return OracleAgentSimulator(self.seed, self.error_rate, self.mistake_kinds)

    # -- planning --

    def bind_task(self, task: Task) -> None:
        self.task = task
        self.scenario = scenario_of(task)
        steps = task.gold_steps or [GoldStep(action=i, request=0, role="act", describe=a.name)
                                    for i, a in enumerate(task.gold_actions)]
        self.steps = steps
        agenda: list[tuple[str, int]] = []
        turns = sorted({r.turn for r in self.scenario.requests})
        for turn in turns:
            requests = [i for i, r in enumerate(self.scenario.requests) if r.turn == turn]
            agenda += [("step", k) for k, s in enumerate(steps) if s.request in requests]
            agenda.append(("summary", turn))
        self._agenda, self._pos = agenda, 0
        self._asked: dict[int, int] = {}
        self._confirmed: set[int] = set()
        self._confirm_asks: dict[int, int] = {}
        self._awaiting_yes: int | None = None
        self._retry: tuple[str, dict] | None = None
        self._failed: dict[int, str] = {}  # request -> what went wrong, in words
        self._declined: set[int] = set()
        self._done: set[int] = set()
        self._pending: tuple[int, str, dict] | None = None  # (step, tool, arguments) awaiting its output
        self._created: dict[int, Any] = {}
        self._mistake = self._plan_mistake() if self._rng.random() < self.error_rate else None

    def _plan_mistake(self) -> tuple[str, int] | None:
        steps, task = self.steps, self.task
        options: dict[str, list[int]] = {
            "wrong_argument": [k for k, s in enumerate(steps) if s.action >= 0 and task.gold_actions[s.action].arguments],
            "skipped_lookup": [k for k, s in enumerate(steps) if s.role == "lookup"],
            "extra_call": [k for k, s in enumerate(steps) if s.action >= 0 and s.role == "lookup"],
            "wrong_tool": [k for k, s in enumerate(steps) if s.action >= 0],
            "hallucinated_id": [k for k, s in enumerate(steps) if s.action >= 0 and any(
                _id_text(task.gold_actions[s.action].arguments.get(p)) for p in s.sources)],
            "premature_stop": [max((k for k, s in enumerate(steps) if s.role == "act" and s.action >= 0), default=-1)],
            "policy_violation": [k for k, s in enumerate(steps) if s.attempt is not None or s.confirm],
            # a read request whose outputs are said nowhere else (a new record's id comes up again later)
            "outputs_not_communicated": [r for r, request in enumerate(self.scenario.requests)
                                         if request.kind in ("get", "search", "list") and request.outputs
                                         and not any(o.value == x.value for k, other in enumerate(self.scenario.requests)
                                                     if k != r for x in other.outputs for o in request.outputs)],
        }
        options = {kind: [k for k in ks if k >= 0] for kind, ks in options.items()}
        kinds = [k for k in self.mistake_kinds if options[k]]
        if not kinds:
            return None
        kind = self._rng.choice(kinds)
        return kind, self._rng.choice(options[kind])

    def _is(self, kind: str, step: int | None = None) -> bool:
        return self._mistake is not None and self._mistake[0] == kind and (step is None or self._mistake[1] == step)

    # -- acting --

    def act(self, messages: list[dict], tools: list[dict]) -> dict:
        if self.task is None:
            raise ValueError("OracleAgentSimulator needs its task: call bind_task(task) first (run_episode does)")
        users = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")
        last = messages[-1] if messages else {}
        if last.get("role") == "tool" and self._pending is not None:
            retry = self._observe(str(last.get("content", "")))
            if retry is not None:
                return retry
        if last.get("role") == "user":
            self._read_user(str(last.get("content") or ""))
        while self._pos < len(self._agenda):
            what, index = self._agenda[self._pos]
            if what == "summary":
                self._pos += 1
                return self._text(self._summary(index))
            step = self.steps[index]
            if step.request in self._failed or step.request in self._declined:
                self._pos += 1
                continue
            if self._is("premature_stop", index):
                self.mistakes.append("premature_stop")
                self._pos = len(self._agenda)
                return self._text("All done: everything you asked for is taken care of. Anything else?")
            if self._is("skipped_lookup", index):
                self.mistakes.append("skipped_lookup")
                self._mistake = None  # the later steps go ahead with ids it never looked up
                self._pos += 1
                continue
            if step.action < 0:  # the request the policy forbids: refused in the summary
                self._pos += 1
                if self._is("policy_violation", index) and step.attempt is not None:
                    self.mistakes.append("policy_violation")
                    return self._call(index, step.attempt.name, dict(step.attempt.arguments))
                self._done.add(step.request)
                continue
            action = self.task.gold_actions[step.action]
            missing = [f for f in self._facts_of(step) if not _told(users, f)]
            if missing and self._is("hallucinated_id", index) and any(_id_text(f.value) for f in missing):
                pass  # the mistake: it makes the id up instead of asking
            elif missing and self._asked.get(index, 0) < 2:
                self._asked[index] = self._asked.get(index, 0) + 1
                names = [f.name for f in missing]
                listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
                return self._text(self._rng.choice(_ASKS).format(listed))
            if step.confirm and index not in self._confirmed:
                if self._is("policy_violation", index):
                    self.mistakes.append("policy_violation")
                elif self._confirm_asks.get(index, 0) >= 2:
                    self._declined.add(step.request)  # no clear yes after asking twice: not done
                    continue
                else:
                    self._confirm_asks[index] = self._confirm_asks.get(index, 0) + 1
                    self._awaiting_yes = index
                    return self._text(self._rng.choice(_CONFIRMS).format(step.describe))
            self._pos += 1
            return self._gold_call(index, action.name, dict(action.arguments), tools)
        return self._text("Is there anything else I can help you with?")

    def _facts_of(self, step: GoldStep) -> list:
        names = {src[5:] for src in step.sources.values() if src.startswith("fact:")}
        return [f for f in self.scenario.facts if f.name in names]

    def _read_user(self, text: str) -> None:
        waiting = self._awaiting_yes
        if waiting is None:
            return
        self._awaiting_yes = None
        if is_affirmative(text):
            self._confirmed.add(waiting)
        elif is_negative(text):
            self._declined.add(self.steps[waiting].request)

    def _gold_call(self, index: int, name: str, arguments: dict, tools: list[dict]) -> dict:
        if self._is("wrong_argument", index):
            wrong = self._corrupt(arguments, _schema(tools, name))
            if wrong != arguments:
                self._retry = (name, arguments)
                return self._call(index, name, wrong)
        if self._is("hallucinated_id", index):
            for param in sorted(arguments):
                if _id_text(arguments[param]):
                    arguments[param] = _made_up(arguments[param], self._rng)
                    self.mistakes.append("hallucinated_id")
                    break
        if self._is("wrong_tool", index):
            other = _other_tool(tools, name, arguments, self._rng)
            if other is not None:
                self.mistakes.append("wrong_tool")
                name = other
        return self._call(index, name, arguments)

    def _observe(self, content: str) -> dict | None:
        index, name, arguments = self._pending
        self._pending = None
        retry, self._retry = self._retry, None
        if retry is not None:
            if content.startswith("Error"):
                self.mistakes.append(RECOVERED)
                return self._call(index, *retry)
            self.mistakes.append("wrong_argument")
        step = self.steps[index]
        if content.startswith("Error"):
            self._failed[step.request] = content[6:].strip()[:120] or "the tool refused"
            return None
        try:
            self._created[index] = json.loads(content)
        except json.JSONDecodeError:
            self._created[index] = content
        if step.role == "act":
            self._done.add(step.request)
        if self._is("extra_call", index):
            self.mistakes.append("extra_call")
            self._mistake = None
            return self._call(index, name, arguments)
        return None

    def _call(self, index: int, name: str, arguments: dict) -> dict:
        self._calls += 1
        self._pending = (index, name, arguments)
        return {"role": "assistant", "content": None, "tool_calls": [{
            "id": f"call_{self._calls:03d}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments, sort_keys=True, ensure_ascii=False)},
        }]}

    @staticmethod
    def _text(text: str) -> dict:
        return {"role": "assistant", "content": " ".join(text.split())}

    def _summary(self, turn: int) -> str:
        lines = []
        for r, request in enumerate(self.scenario.requests):
            if request.turn != turn:
                continue
            what = next((s.describe for s in self.steps if s.request == r and s.role == "act"), "do that")
            if request.forbidden and self.task.policy_rule == "scope":
                lines.append(f"I'm sorry, but I can't {what}: none of my tools can do that, and by our policy I "
                             "act only through them.")
                continue
            if request.forbidden:
                status = next((o.value for o in request.outputs), None)
                reason = f" its current status is {status}, and" if status else ""
                if r in self._failed:
                    lines.append(f"I tried to {what}, but it was refused:{reason} our policy does not allow it.")
                else:
                    lines.append(f"I'm sorry, but I can't {what}:{reason} our policy does not allow that change.")
                continue
            if r in self._declined:
                lines.append(f"Understood, I have not done it ({what}).")
                continue
            if r in self._failed:
                lines.append(f"I'm sorry, I could not {what}: {self._failed[r]}.")
                continue
            if self._is("outputs_not_communicated", r):
                self.mistakes.append("outputs_not_communicated")
                self._mistake = None
                lines.append("I've looked that up for you and everything is in order.")
                continue
            if request.kind in ("get", "search", "list"):
                lines += [f"The {o.name} is {o.value}." for o in request.outputs] or [f"I have done this: {what}."]
            else:
                lines.append(f"Done: I did {what}.")
                lines += [f"The {o.name} is {o.value}." for o in request.outputs]
        return self._rng.choice(_OPENERS) + " ".join(lines) + " " + self._rng.choice(_CLOSERS)

    def _corrupt(self, arguments: dict, parameters: dict) -> dict:
        """The same arguments with one value plausibly wrong (a typo'd id, an off-by-one, another enum)."""
        wrong = dict(arguments)
        key = self._rng.choice(sorted(arguments))
        value = arguments[key]
        schema = ((parameters or {}).get("properties") or {}).get(key) or {}
        others = [v for v in schema.get("enum") or [] if v != value]
        if others:
            wrong[key] = self._rng.choice(others)
        elif isinstance(value, bool):
            wrong[key] = not value
        elif isinstance(value, int):
            wrong[key] = value + self._rng.choice((-1, 1))
        elif isinstance(value, float):
            wrong[key] = round(value * 1.1 + 1.0, 2)
        elif isinstance(value, str):
            wrong[key] = _made_up(value, self._rng) if re.search(r"\d", value) else (value + "s" if value else "unknown")
        else:
            wrong[key] = type(value)()
        return wrong


def _id_text(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z][\w]*[-_]\d+", value) is not None


def _made_up(value: str, rng: random.Random) -> str:
    digits = re.search(r"(\d+)(?!.*\d)", value)
    if not digits:
        return value + "-x"
    n = int(digits.group(1)) + rng.randint(40, 90)
    return value[: digits.start()] + str(n) + value[digits.end():]


def _schema(tools: list[dict], name: str) -> dict:
    return next((t["function"].get("parameters") or {} for t in tools if t["function"]["name"] == name), {})


def _other_tool(tools: list[dict], name: str, arguments: dict, rng: random.Random) -> str | None:
    """Another tool the same arguments fit: what an agent that picked the wrong tool would call."""
    fits = []
    for t in tools:
        fn = t["function"]
        params = fn.get("parameters") or {}
        required = set(params.get("required") or [])
        if fn["name"] != name and required <= set(arguments) and set(arguments) <= set(params.get("properties") or {}):
            fits.append(fn["name"])
    return rng.choice(sorted(fits)) if fits else None
