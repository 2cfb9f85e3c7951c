# embed.cmake -- turns a text file into a C header holding it as a
# NUL-terminated char array, and its SHA-256 as NAME_sha256 (a string).
# A "@EMBED_SHA256@" in the text becomes that hash, so the text can tell
# which version of it is running (saga.lua's saga_library).
# Usage: cmake -DIN=file -DOUT=header -DNAME=ident -P embed.cmake
file(SHA256 "${IN}" sha)
file(READ "${IN}" text)
string(REPLACE "@EMBED_SHA256@" "${sha}" text "${text}")
file(WRITE "${OUT}.tmp" "${text}")
file(READ "${OUT}.tmp" hex HEX)
file(REMOVE "${OUT}.tmp")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n  " bytes "${bytes}")
file(WRITE "${OUT}" "/* Generated from ${IN} by embed.cmake; do not edit. */\n"
     "#define ${NAME}_sha256 \"${sha}\"\n"
     "static const char ${NAME}[] = {\n  ${bytes}0x00};\n")
