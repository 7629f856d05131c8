"""The READMEs' and hints' LaTeX ($...$, $$...$$) as readable text for a terminal:
  $\\frac{q \\cdot k}{\\sqrt{D}}$  ->  (q · k)/√D
Not a TeX engine: it knows the commands the lessons use, and leaves the others' names."""

import re

SYMBOLS = {
    "cdot": "·", "times": "×", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "ne": "≠", "neq": "≠",
    "approx": "≈", "sim": "~", "equiv": "≡", "sum": "Σ", "prod": "Π", "infty": "∞", "in": "∈",
    "notin": "∉", "ldots": "…", "dots": "…", "cdots": "⋯", "to": "→", "rightarrow": "→",
    "leftarrow": "←", "Rightarrow": "⇒", "mapsto": "↦", "circ": "∘", "odot": "⊙", "otimes": "⊗",
    "oplus": "⊕", "pm": "±", "mp": "∓", "lfloor": "⌊", "rfloor": "⌋", "lceil": "⌈", "rceil": "⌉",
    "langle": "⟨", "rangle": "⟩", "partial": "∂", "nabla": "∇", "forall": "∀", "exists": "∃",
    "mid": "|", "vert": "|", "lVert": "‖", "rVert": "‖", "Vert": "‖", "|": "‖", "top": "ᵀ",
    "ll": "≪", "gg": "≫", "propto": "∝", "cup": "∪", "cap": "∩", "subset": "⊂", "emptyset": "∅",
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ",
    "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "phi": "φ",
    "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ",
    "Lambda": "Λ", "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω", "ell": "ℓ",
    "max": "max", "min": "min", "exp": "exp", "log": "log", "ln": "ln", "sin": "sin", "cos": "cos",
    "arg": "arg", "argmax": "argmax", "lim": "lim", "det": "det",
    "quad": "  ", "qquad": "    ", ",": " ", ";": " ", ":": " ", "!": "", " ": " ",
    "{": "{", "}": "}", "_": "_", "%": "%", "#": "#", "&": "&", "left": "", "right": "",
    "big": "", "Big": "", "bigg": "", "Bigg": "", "displaystyle": "", "limits": "",
}
SUPER = dict(zip("0123456789+-=()nijkTt", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱʲᵏᵀᵗ"))
SUB = dict(zip("0123456789+-=()aeijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ"))
TEXT_COMMANDS = ("text", "mathrm", "mathbf", "mathit", "mathsf", "mathtt", "operatorname", "textrm",
                 "boldsymbol", "mathcal", "mathbb", "hat", "tilde", "bar", "overline", "vec", "widehat")


def _group(s: str, i: int):
    """The argument starting at s[i] (a {group} or one character/command): (text, end)."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return "", i
    if s[i] == "{":
        depth, j = 0, i
        while j < len(s):
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            if depth == 0:
                return s[i + 1:j], j + 1
            j += 1
        return s[i + 1:], len(s)
    if s[i] == "\\":
        m = re.match(r"\\([A-Za-z]+|.)", s[i:])
        return m[0], i + len(m[0])
    return s[i], i + 1


def _simple(t: str) -> bool:
    return bool(re.fullmatch(r"[\w.·'√]+", t))


def _convert(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", s[i:])
            name, i = m[1], i + len(m[0])
            if name == "frac" or name == "dfrac" or name == "tfrac":
                a, i = _group(s, i)
                b, i = _group(s, i)
                a, b = _convert(a), _convert(b)
                out.append(f"{a if _simple(a) else '(' + a + ')'}/{b if _simple(b) else '(' + b + ')'}")
            elif name == "sqrt":
                a, i = _group(s, i)
                a = _convert(a)
                out.append("√" + (a if _simple(a) else f"({a})"))
            elif name in TEXT_COMMANDS:
                a, i = _group(s, i)
                out.append(_convert(a))
            elif name in SYMBOLS:
                out.append(SYMBOLS[name])
            else:
                out.append(name)
        elif c in "^_":
            a, i = _group(s, i + 1)
            a = _convert(a)
            table = SUPER if c == "^" else SUB
            if a and all(ch in table for ch in a):
                out.append("".join(table[ch] for ch in a))
            elif a == "ᵀ":
                out.append(a)
            else:
                out.append(c + (a if len(a) == 1 else f"({a})"))
        elif c in "{}":
            i += 1
        elif c == "~":
            out.append(" ")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def math_to_text(text: str) -> str:
    """Replaces every $$...$$ and $...$ of a Markdown text by readable text; code spans
    and fenced blocks are left as they are."""
    parts = re.split(r"(```.*?```|`[^`\n]*`)", text, flags=re.S)
    for k in range(0, len(parts), 2):
        p = re.sub(r"\$\$(.+?)\$\$", lambda m: "    " + re.sub(r"\s+", " ", _convert(m[1])).strip(), parts[k],
                   flags=re.S)
        parts[k] = re.sub(r"(?<![\\$])\$([^$\n]+?)\$", lambda m: re.sub(r"\s+", " ", _convert(m[1])).strip(), p)
    return "".join(parts)
