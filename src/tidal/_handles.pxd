# C declarations for _handles.py (Cython pure-Python mode).  Keep in step with the .py.
#
# The classes stay Python classes (see _handle_layout.pxd for why, and for
# the C view of their fields the loop uses); here the module's constants
# become C values and the import-time layout check is the C one.

from tidal._handle_layout cimport layout_matches, use_direct_traverse
from tidal._handle_layout cimport Handle as CHandle

import cython

cdef object _copy_context
cdef bint _COMPILED
cdef int _CALLER_DEPTH
cdef bint _FORMAT_TAKES_DEBUG

# The handle's fields as C struct loads/stores (a TimerHandle is a Handle).
@cython.locals(debug=bint)
cdef void _cancel(CHandle handle, bint timer) except *

# What tidal's loop does when one of its handles is cancelled: count a
# scheduled timer (if `timer`), and say whether the loop is in debug mode.
ctypedef bint (*cancel_hook)(object loop, object handle, bint timer) except -1
cdef object _hooked_loop_class
cdef cancel_hook _loop_cancel_hook
cdef void set_cancel_hook(object loop_class, cancel_hook hook)
cdef set _hooked_subclasses
cdef object _hooked_last
cdef void hook_subclass(object loop_class)
cdef inline bint _hooked_subclass(object loop_class) except -1
