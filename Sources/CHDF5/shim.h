/* The include folder (Debian/Ubuntu: /usr/include/hdf5/serial) and the library folder come from
   pkg-config's `hdf5` (Package.swift); on Debian and Ubuntu that name is the alternative libhdf5-dev
   points at its serial build. */
#include <hdf5.h>

/* libhdf5's constants are macros over globals (H5OPEN H5T_IEEE_F32LE_g, (hid_t)0, ...), which
   Swift cannot import (or, for the globals, cannot use safely in Swift 6 mode). These inline
   accessors return them; call them only after H5open() and under ZooHDF5's lock. */
static inline hid_t zoo_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t zoo_h5s_all(void) { return H5S_ALL; }
static inline hid_t zoo_h5e_default(void) { return H5E_DEFAULT; }
static inline unsigned zoo_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline hid_t zoo_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline size_t zoo_h5t_variable(void) { return H5T_VARIABLE; }
static inline haddr_t zoo_haddr_undef(void) { return HADDR_UNDEF; }
static inline hid_t zoo_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t zoo_h5t_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline hid_t zoo_h5t_std_i8le(void) { return H5T_STD_I8LE; }
static inline hid_t zoo_h5t_std_i16le(void) { return H5T_STD_I16LE; }
static inline hid_t zoo_h5t_std_i32le(void) { return H5T_STD_I32LE; }
static inline hid_t zoo_h5t_std_i64le(void) { return H5T_STD_I64LE; }
static inline hid_t zoo_h5t_std_u8le(void) { return H5T_STD_U8LE; }
static inline hid_t zoo_h5t_std_u16le(void) { return H5T_STD_U16LE; }
static inline hid_t zoo_h5t_std_u32le(void) { return H5T_STD_U32LE; }
static inline hid_t zoo_h5t_std_u64le(void) { return H5T_STD_U64LE; }
static inline hid_t zoo_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t zoo_h5t_native_uint64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t zoo_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t zoo_h5t_c_s1(void) { return H5T_C_S1; }
