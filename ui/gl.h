// Small owning wrappers for the OpenGL 3.3 objects the panels use (STYLE 15: RAII for every C
// handle) and shader compilation with the driver's log in the error. Needs a current GL context;
// knows nothing of Qt. Functions come from the system libGL (GL_GLEXT_PROTOTYPES).
#pragma once
#ifndef GL_GLEXT_PROTOTYPES
#define GL_GLEXT_PROTOTYPES 1
#endif
#include <GL/gl.h>
#include <GL/glext.h>

#include <string>
#include <utility>

namespace longshot::ui::gl {

// A GL name with its deleter; move-only. Destroy only while the owning context is current.
template <void (*Delete)(GLuint)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(GLuint id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, 0)) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, 0);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  GLuint get() const { return id_; }
  explicit operator bool() const { return id_ != 0; }
  void reset() {
    if (id_) Delete(id_);
    id_ = 0;
  }

 private:
  GLuint id_ = 0;
};

void delete_texture(GLuint id);
void delete_framebuffer(GLuint id);
void delete_program(GLuint id);
void delete_vertex_array(GLuint id);

using Texture = Handle<delete_texture>;
using Framebuffer = Handle<delete_framebuffer>;
using Program = Handle<delete_program>;
using VertexArray = Handle<delete_vertex_array>;

// Compiles and links; throws longshot::Error with the driver's log and the shader's name.
Program link_program(const std::string& vertex_name, const std::string& vertex_src,
                     const std::string& fragment_name, const std::string& fragment_src);

// A 2D texture with nearest filtering and clamped edges, (re)allocated and filled with `data`.
// format: GL_RGB / GL_RGBA (bytes) or GL_RED with GL_FLOAT data.
void upload_texture(Texture& tex, int width, int height, GLenum internal_format, GLenum format, GLenum type,
                    const void* data, GLint filter = GL_NEAREST);

}  // namespace longshot::ui::gl
