{
  "targets": [
    {
      "target_name": "bao",
      "sources": [
        "native/addon.cc",
        "native/abi.cc",
        "native/attach.cc",
        "native/blockdev.cc",
        "native/cells.cc",
        "native/errors.cc",
        "native/fdutil.cc",
        "native/ioctls.cc",
        "native/iovecs.cc",
        "native/journal.cc",
        "native/notify.cc",
        "native/poller.cc",
        "native/tap.cc",
        "native/unixsock.cc",
        "native/uring.cc",
        "native/vhost.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lpthread"]
    }
  ]
}
