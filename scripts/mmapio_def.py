#!/usr/bin/env python3
"""The Windows module-definition file of libmmapio.dll: every function
include/mmapio.h declares (what libmmapio.sym exports on Linux).

    mmapio_def.py include/mmapio.h libmmapio.def
"""
import re
import sys


def functions(header):
    text = re.sub(r"/\*.*?\*/", " ", header, flags=re.S)  # comments
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^\s*#[^\n]*", " ", text, flags=re.M)  # the preprocessor
    names = re.findall(r"\b(mmapio_[a-z0-9_]+)\s*\(", text)
    return sorted(set(names))


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        names = functions(f.read())
    with open(out, "w", encoding="utf-8") as f:
        f.write("LIBRARY libmmapio.dll\nEXPORTS\n")
        f.writelines(f"    {n}\n" for n in names)


if __name__ == "__main__":
    main()
