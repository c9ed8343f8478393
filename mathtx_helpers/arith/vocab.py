"""The arithmetic track's tokens: one per character, with the library's ids (ARITHMETIC.md §A1).

Digits 0-9 are ids 0-9, '+' 10, '-' 11, '=' 12 (d_vocab 13: the library's '*' and '\\' are never used here).
"""

PLUS, MINUS, EQUALS = 10, 11, 12
VOCAB = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "-", "=")
D_VOCAB = len(VOCAB)
